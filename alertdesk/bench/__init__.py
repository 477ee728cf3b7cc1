"""`alertdesk bench`: load generators, the embedded and distributed benchmarks, and the machine's baselines.

Nothing here runs in production; it measures the processes that do, from outside, as a sender would.
"""
