"""What the functional tests, the browser tests and the benchmarks share: a free loopback
port (`net`), a server subprocess runner (`server`), a protocol-v1 test client
(`client`), real image files made with Pillow (`imagekit`) and the shipped nginx and
Caddy configurations run in front of a server (`proxy`). It runs servers on 127.0.0.1
only and never imports chatsrv: everything here talks to the server the way a user's
program does, over a socket."""
