{
  "targets": [
    {
      "target_name": "fdpass",
      "sources": ["src/fdpass.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"]
    },
    {
      "target_name": "fdpass-connect",
      "sources": ["src/connect.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"]
    }
  ]
}
