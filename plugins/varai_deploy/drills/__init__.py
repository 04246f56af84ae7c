"""Disaster-recovery drills: check the steady state, break something for real, recover through the
project's own automation, and measure the recovery against the objectives (RTO, RPO, MTTR)."""
