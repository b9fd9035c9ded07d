"""The mapping language: vendor maps in YAML, compiled once into plain callables."""

from gateway.mapping.compiler import CompiledOperation, Step, VendorMap
from gateway.mapping.loader import load_map, load_maps
from gateway.mapping.request import UpstreamRequest
from gateway.mapping.response import MalformedResponse, Page

__all__ = [
    "CompiledOperation",
    "MalformedResponse",
    "Page",
    "Step",
    "UpstreamRequest",
    "VendorMap",
    "load_map",
    "load_maps",
]
