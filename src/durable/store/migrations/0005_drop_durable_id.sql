-- Run ids are made by core/ids.py (monotonic within a process), so the SQL generator is unused.
DROP FUNCTION durable_id();
