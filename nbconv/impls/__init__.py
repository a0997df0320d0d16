"""CPU implementations; importing this package registers them with the tuner."""
