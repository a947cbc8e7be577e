"""Print the server image's requirements from pyproject.toml, one per line: the project's
dependencies, its `server` extra and its build requirements (setuptools). Used by
deploy/Dockerfile and deploy/docker/fetch-wheels, so the list is written once."""

import sys
import tomllib

with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as file:
    pyproject = tomllib.load(file)
project = pyproject["project"]
print("\n".join([*project["dependencies"], *project["optional-dependencies"]["server"],
                 *pyproject["build-system"]["requires"]]))
