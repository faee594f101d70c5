{
  "targets": [
    {
      "target_name": "fdpass",
      "sources": ["src/fdpass.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"]
    }
  ]
}
