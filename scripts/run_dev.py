"""Run the web app and one jobs process together; Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

HOST = os.environ.get("CADENCE_HOST", "127.0.0.1")
PORT = os.environ.get("CADENCE_PORT", "5000")


def main() -> int:
    """Start `python -m jobs` and the Flask server; stop both when either ends."""
    python = sys.executable
    procs = [
        subprocess.Popen([python, "-m", "jobs"]),
        subprocess.Popen(
            [python, "-m", "flask", "--app", "app", "run", "--host", HOST, "--port", PORT]
        ),
    ]
    print(f"Cadence is running on http://{HOST}:{PORT}/ (Ctrl-C to stop)", flush=True)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return max((p.returncode or 0) for p in procs)


if __name__ == "__main__":
    sys.exit(main())
