{
  "targets": [
    {
      "target_name": "journal",
      "sources": ["src/journal.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-O2"],
      "libraries": ["-ldl"]
    }
  ]
}
