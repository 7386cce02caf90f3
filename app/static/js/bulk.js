// Bulk work page: poll the job's progress and update the figures, the bar and the error list.
(function () {
  "use strict";
  var card = document.getElementById("bulk-job");
  if (!card || card.dataset.finished === "true") { return; }
  var url = card.dataset.progressUrl;
  var bar = document.getElementById("bulk-progress");

  function field(name, value) {
    var el = card.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = String(value); }
  }

  function showErrors(errors) {
    var body = document.getElementById("bulk-errors");
    var section = document.getElementById("bulk-errors-card");
    if (!body || !section || !errors.length) { return; }
    section.hidden = false;
    while (body.firstChild) { body.removeChild(body.firstChild); }
    errors.forEach(function (e) {
      var row = document.createElement("tr");
      var who = document.createElement("td");
      var link = document.createElement("a");
      link.href = "/patients/" + encodeURIComponent(e.study_id);
      link.textContent = e.study_id;
      who.appendChild(link);
      var what = document.createElement("td");
      var detail = document.createElement("code");
      detail.textContent = e.error;
      what.appendChild(document.createTextNode((body.dataset.errorText || "") + " "));
      what.appendChild(detail);
      row.appendChild(who);
      row.appendChild(what);
      body.appendChild(row);
    });
  }

  function update(data) {
    field("status", data.status_label);
    field("done", data.done);
    field("total", data.total);
    field("failed", data.failed);
    bar.max = Math.max(data.total, 1);
    bar.value = data.done;
    bar.textContent = data.done + " / " + data.total;
    document.getElementById("bulk-waiting").hidden = data.status !== "queued";
    showErrors(data.errors || []);
    if (data.finished) {
      document.getElementById("bulk-leave").hidden = true;
      // The final page has the summary and the download link in the reader's language.
      window.location.reload();
      return;
    }
    window.setTimeout(poll, 1000);
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(update)
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  window.setTimeout(poll, 500);
})();
