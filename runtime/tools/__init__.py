"""Developer tools behind the `dmd` command: never deployed to Lambda."""
