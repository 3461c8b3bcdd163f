-- The interview platform's own tables (ShowMeBug, a Rails app), as the demo, tests and benchmarks create
-- them in schema `interview`. In production these belong to the platform; the pipeline never writes them
-- and reads them only through the contract views (contract_views.sql).
CREATE SCHEMA IF NOT EXISTS interview;

CREATE TABLE IF NOT EXISTS interview.users (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL,
    email      text,
    mobile     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS interview.interviews (
    id             bigserial   PRIMARY KEY,
    position       text        NOT NULL,
    candidate_name text        NOT NULL,
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL,
    status         text        NOT NULL CHECK (status IN ('scheduled', 'cancelled', 'finished')),
    room_url       text,
    recruiter_id   bigint      REFERENCES interview.users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Databases created before the platform recorded recruiters.
ALTER TABLE interview.interviews ADD COLUMN IF NOT EXISTS recruiter_id bigint REFERENCES interview.users (id);
CREATE INDEX IF NOT EXISTS interviews_start_at ON interview.interviews (start_at);
CREATE INDEX IF NOT EXISTS interviews_end_at ON interview.interviews (end_at);

CREATE TABLE IF NOT EXISTS interview.interview_interviewers (
    id           bigserial PRIMARY KEY,
    interview_id bigint    NOT NULL REFERENCES interview.interviews (id),
    user_id      bigint    NOT NULL REFERENCES interview.users (id),
    UNIQUE (interview_id, user_id)
);
CREATE INDEX IF NOT EXISTS interview_interviewers_user ON interview.interview_interviewers (user_id);

CREATE TABLE IF NOT EXISTS interview.feedbacks (
    id           bigserial   PRIMARY KEY,
    interview_id bigint      NOT NULL REFERENCES interview.interviews (id),
    user_id      bigint      NOT NULL REFERENCES interview.users (id),
    submitted_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (interview_id, user_id)
);
