"""Avro serialization: the schema catalog, single-object codecs and domain <-> Avro mapping."""
