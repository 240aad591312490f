"""Messages of conversations: turns, answers that outlive their client, branches, feedback."""
