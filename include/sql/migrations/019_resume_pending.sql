-- A message resumed from the ledger keeps its content until it is settled: a transient error or a killed
-- worker leaves it pending with its payload, and the next resume picks it up again (before, only rows still
-- 'deferred' were found, so such a message could stay pending for good). The index follows the new lookup.

CREATE INDEX message_log_to_resume ON wecom.message_log (not_before, dedup_key, recipient)
    WHERE deferred_payload IS NOT NULL;
DROP INDEX wecom.message_log_deferred;
