-- received, accepted, quarantined callback lines (every judged line is exactly one of the two).
SELECT
    (SELECT count(*) FROM callback_checked),
    (SELECT count(*) FROM callback_events),
    (SELECT count(*) FROM callbacks_quarantine)
