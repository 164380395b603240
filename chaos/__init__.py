"""`make chaos`: kill the data plane at random moments during a seed, and prove nothing was lost."""
