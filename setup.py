"""Metadata lives in setup.cfg. This only compiles the catalogues before build_py.

translations/<lang>/LC_MESSAGES/messages.po -> messages.mo, so that wheels (and editable
installs, whose build also runs build_py) carry compiled catalogues. kiosk/catalogs.py is
loaded by file path: importing the kiosk package would import Flask, which is not installed
in the build environment.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _catalogs_module():
    path = ROOT / "kiosk" / "catalogs.py"
    spec = importlib.util.spec_from_file_location("_kiosk_build_catalogs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class BuildPyWithCatalogues(build_py):
    def run(self):
        translations = ROOT / "translations"
        for mo in _catalogs_module().compile_catalogues(translations):
            self.announce(f"compiled {mo.relative_to(ROOT)}", level=2)
        # The list of package data files may have been computed before the .mo existed.
        self.__dict__.pop("data_files", None)
        super().run()


setup(cmdclass={"build_py": BuildPyWithCatalogues})
