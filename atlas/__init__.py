"""atlas: Elasticsearch watches thousands of metric series for disruptions."""

__version__ = "0.1.0"
