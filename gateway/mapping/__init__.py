"""The mapping language: vendor maps in YAML, compiled once into plain callables."""

from gateway.mapping.compiler import CompiledOperation, Page, UpstreamRequest, VendorMap
from gateway.mapping.loader import load_map, load_maps

__all__ = ["CompiledOperation", "Page", "UpstreamRequest", "VendorMap", "load_map", "load_maps"]
