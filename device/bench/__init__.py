"""`chacha bench`: latency, throughput and footprint, measured the way users feel them."""
