"""Tests of the local upstream replicas."""
