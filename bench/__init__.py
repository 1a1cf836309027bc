"""chatsrv benchmarks: `python -m bench WORKLOAD` (see README.md). Never collected by pytest."""
