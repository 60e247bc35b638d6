"""Build hook of accord-client: generates accord_client.v1 from proto/.

pyproject.toml holds the metadata; this file only adds the generation step to
build_py, so that `pip install clients/python` (or `pip wheel`) compiles the
.proto files with grpcio-tools (messages, typed .pyi and gRPC stubs) into the
built package. Nothing generated is written to the source tree.

    ACCORD_PROTO_DIR  the proto/ directory (default: ../../proto from here)
"""

import glob
import os
import re
import shutil
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "accord_client"
# The proto package accord.v1 becomes the Python package accord_client.v1: a
# top-level `accord` would clash with other distributions that install one.
PROTO_PACKAGE = "accord.v1"


def proto_dir():
    path = os.environ.get("ACCORD_PROTO_DIR") or os.path.join(HERE, "..", "..", "proto")
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "accord", "v1", "tenant.proto")):
        sys.exit(f"accord-client: no accord/v1/*.proto under {path}: build the package "
                 f"from a checkout of the Accord repository, or set ACCORD_PROTO_DIR "
                 f"to its proto/ directory")
    return path


def rewrite(text, source):
    """Moves the generated modules from accord.v1 to accord_client.v1.

    Only import statements and the module names given to the protobuf
    builder change; the serialized descriptors (which name the proto package
    accord.v1 and the files accord/v1/*.proto, as the server does) stay as
    they are."""
    old, new = PROTO_PACKAGE, f"{PACKAGE}.v1"
    text = re.sub(rf"^from {re.escape(old)} import ", f"from {new} import ", text, flags=re.M)
    text = text.replace(f"(DESCRIPTOR, '{old}.", f"(DESCRIPTOR, '{new}.")
    left = re.findall(rf"^\s*(?:from|import) {re.escape(old)}\b.*$", text, flags=re.M)
    if left:
        raise RuntimeError(f"accord-client: {source}: imports left unrewritten: {left}")
    return text


def generate(protos, out):
    """Generates the accord.v1 modules from `protos` into the directory `out`
    (replaced whole)."""
    from grpc_tools import protoc  # a build requirement (pyproject.toml)

    try:
        from importlib.resources import files
        well_known = str(files("grpc_tools") / "_proto")
    except (ImportError, TypeError):  # pragma: no cover
        import pkg_resources
        well_known = pkg_resources.resource_filename("grpc_tools", "_proto")

    sources = sorted(glob.glob(os.path.join(protos, "accord", "v1", "*.proto")))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["grpc_tools.protoc", f"-I{protos}", f"-I{well_known}",
                f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}"]
        status = protoc.main(args + sources)
        if status != 0:
            raise RuntimeError(f"accord-client: grpc_tools.protoc failed ({status}) on {protos}")
        generated = os.path.join(tmp, "accord", "v1")
        if os.path.exists(out):
            shutil.rmtree(out)
        os.makedirs(out)
        for name in sorted(os.listdir(generated)):
            with open(os.path.join(generated, name), encoding="utf-8") as f:
                text = rewrite(f.read(), name)
            with open(os.path.join(out, name), "w", encoding="utf-8") as f:
                f.write(text)
        with open(os.path.join(out, "__init__.py"), "w", encoding="utf-8") as f:
            f.write('"""accord.v1, generated from proto/accord/v1 by grpcio-tools."""\n')
    print(f"accord-client: generated {len(sources)} files of {protos} into {out}")


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            out = os.path.join(HERE, "src", PACKAGE, "v1")
        else:
            out = os.path.join(self.build_lib, PACKAGE, "v1")
        generate(proto_dir(), out)


setup(cmdclass={"build_py": BuildWithStubs})
