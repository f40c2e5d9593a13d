-- Ingest finds the waits and cancelOn rows an event may match through an index instead of reading every
-- row of the event's name (docs/architecture.md, "Matching events to waits and cancels").
--
-- A *pair* of a JSON object is (path, value) for each value reached through objects only that is not
-- itself an object; an array is one value (a match compares arrays whole, never inside them). A pair's
-- fingerprint hashes its path and its value, canonical for the equality a match uses: a number by its
-- decimal value (1, 1.0 and 1e0 are one value, as jsonb and core/match.py compare them), a string,
-- boolean or null by its JSON text (so "1", 1 and true differ), an array by its length alone (its
-- elements are left to the exact check).
--
-- A wait (or cancelOn row) keeps the fingerprint of ONE pair of its match in `match_fp`: a string or
-- number if it has one, else a boolean or null, else an array; the shallowest first. 0 when the match
-- has no pair (null, {}, only empty objects): every event of the name is a candidate for it.
-- An event whose data the match is a subset of holds that very pair, so the fingerprints of all of the
-- event's pairs, plus 0, contain the wait's: the lookup `match_fp = ANY(event fingerprints)` misses no
-- wait, and what it finds too many (a shared pair, a hash collision) the exact check drops. An event
-- with more pairs than event_store fingerprints (256) reads every row of its name, as before.
--
-- `match_fp` is a stored generated column, so every writer of waits and run_cancels gets it without
-- knowing of it, and adding it computes it for the rows already parked. Stored values depend on these
-- exact functions: never redefine them; a different fingerprint needs new functions and a new column.

-- One pair's fingerprint. `path` is a JSON array of keys, so its text is unambiguous.
CREATE FUNCTION durable_pair_fp(path jsonb, value jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended(path::text || ' ' || CASE jsonb_typeof(value)
                                                     WHEN 'number' THEN trim_scale(value::numeric)::text
                                                     WHEN 'array' THEN '[' || jsonb_array_length(value)::text
                                                     ELSE value::text END, 0)
$$;

-- The fingerprints a JSON object is found by: one per pair, strings and numbers first, then booleans
-- and nulls, then arrays (each group shallowest first, then in jsonb's key order), and last 0, the
-- fingerprint of no pair. NULL when it has more than `cap` pairs (a NULL cap: no limit). A match's
-- fingerprint is the first; an event is looked up by all of them. plpgsql keeps its plans for the
-- session, where an SQL function with a recursive CTE is planned again in every statement calling it
-- (measured in event_store: ~60 µs a call against ~130 µs). durable_pair_fp stays inlinable (every
-- operator in it immutable), which is worth another ~50 µs a call.
CREATE FUNCTION durable_match_fps(data jsonb, cap int) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    objects jsonb[] := ARRAY[data];  -- breadth first: the objects found, each with its path
    paths jsonb[] := ARRAY['[]'::jsonb];
    scalars bigint[] := '{}';
    others bigint[] := '{}';
    arrays bigint[] := '{}';
    i int := 1;
    key text;
    value jsonb;
    path jsonb;
BEGIN
    IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
        RETURN '{0}';
    END IF;
    WHILE i <= cardinality(objects) LOOP
        FOR key, value IN SELECT e.key, e.value FROM jsonb_each(objects[i]) AS e LOOP
            path := paths[i] || to_jsonb(key);
            IF jsonb_typeof(value) = 'object' THEN
                objects := objects || value;
                paths := paths || path;
            ELSIF cardinality(scalars) + cardinality(others) + cardinality(arrays) >= cap THEN
                RETURN NULL;
            ELSIF jsonb_typeof(value) IN ('string', 'number') THEN
                scalars := scalars || durable_pair_fp(path, value);
            ELSIF jsonb_typeof(value) = 'array' THEN
                arrays := arrays || durable_pair_fp(path, value);
            ELSE
                others := others || durable_pair_fp(path, value);
            END IF;
        END LOOP;
        i := i + 1;
    END LOOP;
    RETURN scalars || others || arrays || 0::bigint;
END
$$;

ALTER TABLE waits
    ADD COLUMN match_fp bigint NOT NULL GENERATED ALWAYS AS ((durable_match_fps(match, NULL))[1]) STORED;
DROP INDEX waits_by_event;
CREATE INDEX waits_by_match ON waits (app_id, event_name, match_fp);

ALTER TABLE run_cancels
    ADD COLUMN match_fp bigint NOT NULL GENERATED ALWAYS AS ((durable_match_fps(match, NULL))[1]) STORED;
DROP INDEX run_cancels_by_event;
CREATE INDEX run_cancels_by_match ON run_cancels (app_id, event_name, match_fp);
