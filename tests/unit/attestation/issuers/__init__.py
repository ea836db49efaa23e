"""Evidence issuers for use inside TEEs (Gramine, configfs-tsm) against fake device trees."""
