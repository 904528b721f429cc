# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_vapora_global_optspecs
    string join \n socket= json q/quiet expect-uid= no-autostart h/help V/version
end

function __fish_vapora_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_vapora_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_vapora_using_subcommand
    set -l cmd (__fish_vapora_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c vapora -n "__fish_vapora_needs_command" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_needs_command" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_needs_command" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_needs_command" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_needs_command" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_needs_command" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_needs_command" -s V -l version -d 'Print version'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "daemon" -d 'Run the daemon in the foreground'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "task" -d 'Add, inspect, claim and finish tasks'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "agent" -d 'Register and manage agents (workers)'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "ping" -d 'Check that the daemon answers; print its version, pid, uptime and socket'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "shutdown" -d 'Stop the daemon gracefully; returns once its socket is gone'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "metrics" -d 'Print daemon metrics'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "events" -d 'Stream events (task added, claimed, done, ...) as they happen, one per line'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "top" -d 'Watch the daemon live, full screen: tasks per queue and status, throughput, agents, running tasks and the latest events'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "work" -d 'Run tasks: claim them as an agent and run each payload with `sh -c`, reporting done (exit 0, the result being the last line printed) or failed (`exit N`, `killed by signal TERM`, `timed out after 30s`). SIGTERM/SIGINT: claim nothing more and exit once the running tasks end; a second signal stops them (they go back to the queue)'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "run" -d 'Add a task and follow it: its output as a worker runs it, then the command\'s own exit status (`vapora run -- make test`). Takes `task add`\'s flags; says on stderr when no worker is running to take it'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c vapora -n "__fish_vapora_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l max-frame -d 'Largest frame accepted, in bytes (4 MiB to the 16 MiB default: a frame must hold the largest task)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l socket-mode -d 'Permission bits of the socket, in octal. Widen to 660 with --allow-group (and a socket directory the group can enter)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l allow-group -d 'Also accept clients in this group (as primary or supplementary group)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l log-format -d 'Log lines as text or as JSON objects (for log shippers)' -r -f -a "text\t''
json\t''"
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l handshake-timeout -d 'How long a client has to send its handshake before it is dropped (a duration, e.g. 500ms, 5s)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l max-connections -d 'Open connections beyond this are refused ("too many connections")' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l max-title -d 'Longest task title accepted, in bytes (at most 65536)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l max-payload -d 'Longest payload, result or failure reason accepted, in bytes (at most 5 MiB, and three of them must fit in --max-frame)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l max-batch -d 'Most tasks in one add request (at most 10000)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l data-dir -d 'Where the database (vapora.db) and the lock file live [env: VAPORA_DATA_DIR] [default: ~/.local/share/vapora]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l sync -d 'normal: an acknowledged change survives the daemon being killed; full: also a power loss (fsync on every commit)' -r -f -a "normal\t''
full\t''"
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l retain -d 'Delete finished tasks this long after they finished (a duration, e.g. 12h, 7days)' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l lease -d 'How long a claim holds a task without a sign of life from its agent' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l heartbeat-ttl -d 'An agent silent for longer than this goes offline and loses its tasks' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l retry-backoff -d 'Delay before the first retry of a failed task; doubles per attempt (capped at 1h, with jitter). 0s retries at once' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l max-log -d 'Most bytes of output kept per task (in DATA_DIR/logs); beyond it the oldest output is dropped, with a marker line saying how much' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "add" -d 'Add a task and print its id; with --stdin, one task per input line'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "list" -d 'List tasks (in id order)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "show" -d 'Show one task'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "claim" -d 'Claim the best task an agent may take'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "done" -d 'Mark a running task done'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "fail" -d 'Mark a running task failed: retried later while attempts are left, else failed'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "cancel" -d 'Cancel a queued, scheduled, blocked or running task, and the tasks waiting on it'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "retry" -d 'Put a failed or cancelled task back in the queue now'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "prune" -d 'Delete finished tasks now; prints how many'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "logs" -d 'Print a task\'s output (stdout and stderr together, as its worker ran it)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "wait" -d 'Wait until tasks end: exit 0 if all are done, 1 if any failed or was cancelled, 5 on timeout'
complete -c vapora -n "__fish_vapora_using_subcommand task; and not __fish_seen_subcommand_from add list show claim done fail cancel retry prune logs wait help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l payload -d 'Opaque data for the worker (a command, JSON, a path...)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l payload-file -d 'The payload is this file\'s content, exactly (`-`: standard input, when not combined with --stdin); for payloads too long for the command line' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l priority -d 'Higher runs first (a whole number, may be negative)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l queue -d 'The queue it goes to (1 to 64 of A-Z a-z 0-9 . _ -)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l require -d 'A capability the claiming agent must have (repeatable)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l max-attempts -d 'How many claims it gets before it fails for good' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l delay -d 'Not claimable until this long from now (a duration, e.g. 30s, 5m, 1h30m)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l at -d 'Not claimable before this time (RFC 3339, e.g. 2026-12-01T08:00:00Z)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l after -d 'Run only after this task is done (repeatable); if it fails or is cancelled, so is this one' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l lease -d 'Lease for this task instead of the daemon\'s --lease (a duration, e.g. 30m)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l cwd -d 'The directory the task runs in (made absolute; default, for a task with a payload: the current directory)' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l env -d 'A variable to set when the task runs (repeatable); the caller\'s environment is not passed on' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l timeout -d 'How long one attempt may run before the worker stops it' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l stdin -d 'Read tasks from standard input, one per line (the line is the title)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -l jsonl -d 'With --stdin: each line is a JSON object with "title" (required) and optionally "payload" (text), "priority" (whole number), "queue" (name), "requires" (array of capabilities), "max_attempts" (whole number), "after" (array of task ids), "cwd" (directory), "env" ({"KEY": "VALUE"}, replacing --env), "timeout_ms" (whole number). Missing fields take the flags\' values; blank lines are skipped'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l status -d 'Only tasks with this status (repeatable)' -r -f -a "queued\t''
running\t''
done\t''
failed\t''
cancelled\t''
scheduled\t''
blocked\t''"
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l queue -d 'Only tasks in this queue' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l agent -d 'Only tasks this agent holds or last held' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l limit -d 'At most this many tasks' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l after -d 'Only tasks with an id above ID: with --limit, pages through a list too long for one answer (the next page starts after the last id printed)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -l payload -d 'Print the raw payload only (for `sh -c "$(vapora task show ID --payload)"`)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l agent -d 'The agent that claims (registered with `vapora agent register`)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l queue -d 'Only from this queue (repeatable; default: any queue)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l wait -d 'Wait this long for a task to arrive (a duration, e.g. 30s)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l done -d 'First mark this task (which the agent runs) done, in the same request and commit: "finish, take the next" in one round trip' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l result -d 'The result of the --done task' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from claim" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -l result -d 'What came of it (kept with the task, shown by `task show`)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -l agent -d 'Refuse unless this agent runs the task' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from done" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l reason -d 'Why it failed (kept as the task\'s error)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l agent -d 'Refuse unless this agent runs the task' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -l no-retry -d 'Fail for good, even with attempts left'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from fail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from cancel" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from cancel" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from cancel" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from cancel" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from cancel" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from cancel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from retry" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from retry" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from retry" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from retry" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from retry" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -l older-than -d 'Only those finished longer ago than this (a duration, e.g. 1h, 2days) [default: the daemon\'s --retain]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -l tail -d 'Only the last N lines (then, with --follow, what comes next)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -l attempt -d 'The output of this attempt (1 is the first run) instead of the latest' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -s f -l follow -d 'Go on printing output as it arrives, until the task ends'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -l timeout -d 'Give up after this long (a duration, e.g. 500ms, 30s, 5m)' -r
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from wait" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a task and print its id; with --stdin, one task per input line'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tasks (in id order)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one task'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "claim" -d 'Claim the best task an agent may take'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "done" -d 'Mark a running task done'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "fail" -d 'Mark a running task failed: retried later while attempts are left, else failed'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "cancel" -d 'Cancel a queued, scheduled, blocked or running task, and the tasks waiting on it'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Put a failed or cancelled task back in the queue now'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Delete finished tasks now; prints how many'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "logs" -d 'Print a task\'s output (stdout and stderr together, as its worker ran it)'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "wait" -d 'Wait until tasks end: exit 0 if all are done, 1 if any failed or was cancelled, 5 on timeout'
complete -c vapora -n "__fish_vapora_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "register" -d 'Register an agent, or update its capabilities and limit'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "list" -d 'List agents'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "show" -d 'Show one agent'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "status" -d 'Pause an agent, take it offline, or resume it'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "heartbeat" -d 'Record that an agent is alive and renew leases: of every task it holds, or with --task of those only (a worker that says what it runs lets a task whose claim answer was lost come back)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "remove" -d 'Remove an agent; its running tasks go back to the queue'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and not __fish_seen_subcommand_from register list show status heartbeat remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -l capability -d 'A capability it has (repeatable)' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -l max-tasks -d 'How many tasks it may run at once' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from register" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -l status -d 'Only agents with this status (repeatable)' -r -f -a "idle\t''
busy\t''
paused\t''
offline\t''"
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from show" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from show" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from show" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from show" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from show" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from status" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from status" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from status" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from status" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from status" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l task -d 'A task this worker runs (repeatable): only these leases are renewed. A named task the agent does not hold (any more) is reported, and the exit code is 1' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l every -d 'Go on: heartbeat again every DUR until killed, riding over daemon restarts. One process with no children, so `kill` leaves nothing behind. Exits 1 as soon as a named task is no longer the agent\'s' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -l release-others -d 'This process alone runs the agent\'s tasks: every task the agent holds that no --task names goes back to the queue now (without --task: every task it holds)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from heartbeat" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from remove" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from remove" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from remove" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from remove" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "register" -d 'Register an agent, or update its capabilities and limit'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "list" -d 'List agents'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one agent'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "status" -d 'Pause an agent, take it offline, or resume it'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "heartbeat" -d 'Record that an agent is alive and renew leases: of every task it holds, or with --task of those only (a worker that says what it runs lets a task whose claim answer was lost come back)'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove an agent; its running tasks go back to the queue'
complete -c vapora -n "__fish_vapora_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vapora -n "__fish_vapora_using_subcommand ping" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand ping" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand ping" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand ping" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand ping" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand ping" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand shutdown" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand shutdown" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand shutdown" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand shutdown" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand shutdown" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand shutdown" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -l format -d 'Output format [default: text; --json is --format json]' -r -f -a "text\t''
json\t''
prometheus\t''"
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand events" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand events" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand events" -l queue -d 'Only events about tasks in this queue' -r
complete -c vapora -n "__fish_vapora_using_subcommand events" -l agent -d 'Only events about this agent' -r
complete -c vapora -n "__fish_vapora_using_subcommand events" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand events" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand events" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand events" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand top" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand top" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand top" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand top" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand top" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vapora -n "__fish_vapora_using_subcommand work" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand work" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -l agent -d 'The agent\'s name (default: the host name). The worker owns it: tasks the agent held from an earlier run go back to the queue when it starts' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -s j -l jobs -d 'Tasks run at once (the agent\'s --max-tasks)' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -l queue -d 'Only claim from this queue (repeatable; default: any)' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -l capability -d 'A capability the agent has (repeatable): tasks that --require it can be claimed' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -l timeout -d 'Stop a task that runs longer than this (SIGTERM, SIGKILL after the grace) and fail it as `timed out`' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -l grace -d 'Between SIGTERM and SIGKILL when a task is stopped (default 10s); if given, also how long the worker waits for running tasks after a first SIGTERM/SIGINT before it stops them' -r
complete -c vapora -n "__fish_vapora_using_subcommand work" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand work" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand work" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand work" -l exit-when-empty -d 'Exit 0 once nothing is claimable and nothing runs (batch use, like xargs)'
complete -c vapora -n "__fish_vapora_using_subcommand work" -l allow-root -d 'Run as root even for a daemon that other users may reach or that runs as another user (whoever may add tasks then runs commands as root)'
complete -c vapora -n "__fish_vapora_using_subcommand work" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand run" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand run" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l payload -d 'Opaque data for the worker (a command, JSON, a path...)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l payload-file -d 'The payload is this file\'s content, exactly (`-`: standard input, when not combined with --stdin); for payloads too long for the command line' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand run" -l priority -d 'Higher runs first (a whole number, may be negative)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l queue -d 'The queue it goes to (1 to 64 of A-Z a-z 0-9 . _ -)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l require -d 'A capability the claiming agent must have (repeatable)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l max-attempts -d 'How many claims it gets before it fails for good' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l delay -d 'Not claimable until this long from now (a duration, e.g. 30s, 5m, 1h30m)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l at -d 'Not claimable before this time (RFC 3339, e.g. 2026-12-01T08:00:00Z)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l after -d 'Run only after this task is done (repeatable); if it fails or is cancelled, so is this one' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l lease -d 'Lease for this task instead of the daemon\'s --lease (a duration, e.g. 30m)' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l cwd -d 'The directory the task runs in (made absolute; default, for a task with a payload: the current directory)' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand run" -l env -d 'A variable to set when the task runs (repeatable); the caller\'s environment is not passed on' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l timeout -d 'How long one attempt may run before the worker stops it' -r
complete -c vapora -n "__fish_vapora_using_subcommand run" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand run" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand run" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand run" -l stdin -d 'Read tasks from standard input, one per line (the line is the title)'
complete -c vapora -n "__fish_vapora_using_subcommand run" -l jsonl -d 'With --stdin: each line is a JSON object with "title" (required) and optionally "payload" (text), "priority" (whole number), "queue" (name), "requires" (array of capabilities), "max_attempts" (whole number), "after" (array of task ids), "cwd" (directory), "env" ({"KEY": "VALUE"}, replacing --env), "timeout_ms" (whole number). Missing fields take the flags\' values; blank lines are skipped'
complete -c vapora -n "__fish_vapora_using_subcommand run" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand completions" -l socket -d 'Path of the daemon\'s Unix socket, for the daemon and the client alike [env: VAPORA_SOCKET] [default: $XDG_RUNTIME_DIR/vapora/vapora.sock]' -r -F
complete -c vapora -n "__fish_vapora_using_subcommand completions" -l expect-uid -d 'Only talk to a daemon running as this user (a uid or a user name); checked before anything is sent. The default per-user socket always requires your own uid; an explicit --socket is trusted as given unless this pins who must answer [env: VAPORA_EXPECT_UID]' -r
complete -c vapora -n "__fish_vapora_using_subcommand completions" -l json -d 'Print results as one JSON document (an object for one item, an array for lists)'
complete -c vapora -n "__fish_vapora_using_subcommand completions" -s q -l quiet -d 'No messages on stderr (errors still show); where a command prints ids or names, only those; `ping` and `task wait` print nothing (their exit code answers)'
complete -c vapora -n "__fish_vapora_using_subcommand completions" -l no-autostart -d 'Never start a daemon: exit 3 when none answers [env: VAPORA_NO_AUTOSTART=1]'
complete -c vapora -n "__fish_vapora_using_subcommand completions" -s h -l help -d 'Print help'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "daemon" -d 'Run the daemon in the foreground'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "task" -d 'Add, inspect, claim and finish tasks'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "agent" -d 'Register and manage agents (workers)'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "ping" -d 'Check that the daemon answers; print its version, pid, uptime and socket'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "shutdown" -d 'Stop the daemon gracefully; returns once its socket is gone'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "metrics" -d 'Print daemon metrics'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "events" -d 'Stream events (task added, claimed, done, ...) as they happen, one per line'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "top" -d 'Watch the daemon live, full screen: tasks per queue and status, throughput, agents, running tasks and the latest events'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "work" -d 'Run tasks: claim them as an agent and run each payload with `sh -c`, reporting done (exit 0, the result being the last line printed) or failed (`exit N`, `killed by signal TERM`, `timed out after 30s`). SIGTERM/SIGINT: claim nothing more and exit once the running tasks end; a second signal stops them (they go back to the queue)'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "run" -d 'Add a task and follow it: its output as a worker runs it, then the command\'s own exit status (`vapora run -- make test`). Takes `task add`\'s flags; says on stderr when no worker is running to take it'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c vapora -n "__fish_vapora_using_subcommand help; and not __fish_seen_subcommand_from daemon task agent ping shutdown metrics events top work run completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "add" -d 'Add a task and print its id; with --stdin, one task per input line'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "list" -d 'List tasks (in id order)'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "show" -d 'Show one task'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "claim" -d 'Claim the best task an agent may take'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "done" -d 'Mark a running task done'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "fail" -d 'Mark a running task failed: retried later while attempts are left, else failed'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "cancel" -d 'Cancel a queued, scheduled, blocked or running task, and the tasks waiting on it'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "retry" -d 'Put a failed or cancelled task back in the queue now'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "prune" -d 'Delete finished tasks now; prints how many'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "logs" -d 'Print a task\'s output (stdout and stderr together, as its worker ran it)'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "wait" -d 'Wait until tasks end: exit 0 if all are done, 1 if any failed or was cancelled, 5 on timeout'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "register" -d 'Register an agent, or update its capabilities and limit'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "list" -d 'List agents'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "show" -d 'Show one agent'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "status" -d 'Pause an agent, take it offline, or resume it'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "heartbeat" -d 'Record that an agent is alive and renew leases: of every task it holds, or with --task of those only (a worker that says what it runs lets a task whose claim answer was lost come back)'
complete -c vapora -n "__fish_vapora_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "remove" -d 'Remove an agent; its running tasks go back to the queue'
