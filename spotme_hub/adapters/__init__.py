"""Device adapters. See `base` for the contract and `registry` for kinds."""

from ..contract import Adapter, DeviceContext, DeviceError, Options, SubmitResult

__all__ = ["Adapter", "DeviceContext", "DeviceError", "Options", "SubmitResult"]
