"""Pure rules, no I/O: durations, cron, backoff, event matching, ids, signatures, and the parsing
of events, answers (ops) and function options. Nothing here touches the network, the database,
the clock (except ``ids.new_id`` reading the time when not given one) or the environment.
"""
