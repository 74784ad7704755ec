"""One function per pipeline stage. The only place that knows stage order and artefact paths;
the CLI, DVC and Prefect are thin doors into it."""
