-- Runs once when the postgres volume is created: the warehouse is its own database with its own owner.
-- The password comes from WAREHOUSE_PASSWORD through the init script's environment (see .env.example).
\set warehouse_password `echo "$WAREHOUSE_PASSWORD"`
CREATE ROLE warehouse LOGIN PASSWORD :'warehouse_password';
CREATE DATABASE warehouse OWNER warehouse;
