"""The library generated record code imports: AttributeValue decoding, typed records, Avro and Arrow writers.

It imports nothing else of dmd, so generated code and the runtime can never form a cycle."""
