-- The callback inbox (wecom.callback_events), written by the receiver.

-- name: store
-- A delivery WeCom retried or duplicated has the same payload: stored once. Returns the row when new.
INSERT INTO wecom.callback_events (payload_sha256, event, change_type, userid, new_userid, department_id,
                                   wecom_created_at, payload)
VALUES (%(sha256)s, %(event)s, %(change_type)s, %(userid)s, %(new_userid)s, %(department_id)s,
        to_timestamp(%(created)s), %(payload)s)
ON CONFLICT (payload_sha256) DO NOTHING
RETURNING event_id;
