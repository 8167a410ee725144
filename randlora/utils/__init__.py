"""Plain helpers with no run state: config resolvers and composition, config checks, one-line CLI errors,
instantiation and length-grouped samplers. Run machinery (results, resume, callbacks) lives in
:mod:`randlora.run`, which may import from here; nothing here imports :mod:`randlora.run`."""
