{
  "targets": [
    {
      "target_name": "podway_native",
      "sources": [
        "native/addon.c",
        "native/ports.c",
        "native/gso.c",
        "native/gro.c",
        "native/rxsuper.c",
        "native/uso.c",
        "native/tcp_md5.c",
        "native/notify.c",
        "native/errors.c"
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "podway_flock",
      "sources": ["native/flock.c", "native/errors.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "pktgen",
      "type": "executable",
      "sources": ["bench/e2e/pktgen.c"],
      "cflags": ["-O2", "-Wall", "-std=gnu11"]
    },
    {
      "target_name": "floorfwd",
      "type": "executable",
      "sources": ["bench/e2e/floorfwd.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
