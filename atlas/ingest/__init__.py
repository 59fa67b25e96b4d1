"""Importers that turn real metric files into source documents."""
