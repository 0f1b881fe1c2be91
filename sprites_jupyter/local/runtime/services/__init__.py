"""Services: definitions, launched processes, the supervisor and log readers."""
