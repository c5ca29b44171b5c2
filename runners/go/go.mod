module executor.local/runner

go 1.19
