"""Schedule layer: patients, their calendars, decisions (enrol, reschedule, salvage, stop) and queries."""
