-- Queries the interview DAGs run against the interview source (contract views only).

-- name: platform_users
SELECT platform_user_id, name, email, mobile FROM interview_contract.platform_users;

-- name: day_interviews
-- Interviews starting within [day_start, day_end), not cancelled, with each interviewer.
SELECT i.interview_id, i.position, i.candidate_name, i.starts_at, i.ends_at, i.room_url,
       i.recruiter_platform_user_id, iv.platform_user_id
FROM interview_contract.interviews i
JOIN interview_contract.interviewers iv USING (interview_id)
WHERE i.starts_at >= %(day_start)s AND i.starts_at < %(day_end)s AND i.status <> 'cancelled'
ORDER BY i.starts_at, i.interview_id;

-- name: owed_feedback
-- Interviews that ended within [since, until) and are not cancelled, whose interviewer has no feedback yet.
SELECT i.interview_id, i.position, i.candidate_name, i.starts_at, i.ends_at, i.room_url,
       i.recruiter_platform_user_id, iv.platform_user_id
FROM interview_contract.interviews i
JOIN interview_contract.interviewers iv USING (interview_id)
WHERE i.ends_at >= %(since)s AND i.ends_at < %(until)s AND i.status <> 'cancelled'
  AND NOT EXISTS (SELECT 1 FROM interview_contract.feedback f
                  WHERE f.interview_id = i.interview_id AND f.platform_user_id = iv.platform_user_id)
ORDER BY i.ends_at, i.interview_id;

-- name: due_reminders
-- Scheduled interviews whose reminder time (start - lead) falls in [window_start, window_end).
SELECT i.interview_id, i.position, i.candidate_name, i.starts_at, i.ends_at, i.room_url,
       i.recruiter_platform_user_id, iv.platform_user_id
FROM interview_contract.interviews i
JOIN interview_contract.interviewers iv USING (interview_id)
WHERE i.starts_at >= %(window_start)s + make_interval(mins => %(lead_minutes)s)
  AND i.starts_at < %(window_end)s + make_interval(mins => %(lead_minutes)s)
  AND i.status = 'scheduled'
ORDER BY i.starts_at, i.interview_id;
