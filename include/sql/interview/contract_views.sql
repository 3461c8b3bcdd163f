-- The contract between the interview platform and this pipeline: the DAGs read these views only.
-- To point the pipeline at a real platform replica, edit these views (column names and types stay).
CREATE SCHEMA IF NOT EXISTS interview_contract;

CREATE OR REPLACE VIEW interview_contract.platform_users AS
SELECT id AS platform_user_id, name, lower(nullif(trim(email), '')) AS email,
       -- digits only, without a +86 country code: the form WeCom's mobile is compared in
       nullif(regexp_replace(regexp_replace(coalesce(mobile, ''), '[^0-9]', '', 'g'), '^86(1[0-9]{10})$', '\1'), '')
           AS mobile
FROM interview.users;

CREATE OR REPLACE VIEW interview_contract.interviews AS
SELECT id AS interview_id, position, candidate_name, start_at AS starts_at, end_at AS ends_at,
       status, room_url, updated_at, recruiter_id AS recruiter_platform_user_id
FROM interview.interviews;

CREATE OR REPLACE VIEW interview_contract.interviewers AS
SELECT interview_id, user_id AS platform_user_id FROM interview.interview_interviewers;

CREATE OR REPLACE VIEW interview_contract.feedback AS
SELECT interview_id, user_id AS platform_user_id, submitted_at FROM interview.feedbacks;

COMMENT ON VIEW interview_contract.platform_users IS 'Contract: platform users (interviewers) with normalised email and mobile, for matching to WeCom.';
COMMENT ON VIEW interview_contract.interviews IS 'Contract: interviews with times (timestamptz), status scheduled, cancelled or finished, and the recruiter (a platform user, or NULL: declines then go to the interviewer''s department leader).';
COMMENT ON VIEW interview_contract.interviewers IS 'Contract: who interviews in which interview.';
COMMENT ON VIEW interview_contract.feedback IS 'Contract: feedback submitted, per interview and interviewer.';
