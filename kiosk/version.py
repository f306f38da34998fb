"""This kiosk's version, in a module that imports nothing: any module can read it without
taking it from the package (kiosk/__init__.py), whose import may still be under way."""

__version__ = "0.1.0"
