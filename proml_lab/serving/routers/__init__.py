"""One router per resource: ranking (rank, score), models, operations (health, metrics)."""
