"""Business rules. Views, the API and the CLI call these; none of them touches the database
behind their back. Each function checks the actor's permission, changes state, writes the audit
log, commits, and then announces the change (save, then push)."""
