"""tus 1.0.0 on Starlette: the protocol handler and its configuration."""

from server.tus.handler import EXTENSIONS, CompletionHook, TusApp, TusConfig

__all__ = ["EXTENSIONS", "CompletionHook", "TusApp", "TusConfig"]
