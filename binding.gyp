{
  "targets": [
    {
      "target_name": "podway_native",
      "sources": [
        "native/addon.c",
        "native/ports.c"
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
