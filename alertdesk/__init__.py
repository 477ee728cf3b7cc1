"""The `alertdesk` command and the wiring of the stages into processes: settings, embedded and distributed modes.

The benchmarks live apart in `alertdesk.bench`, so what a reader of this package sees is how alertdesk runs.
"""
