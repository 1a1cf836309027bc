"""What the functional tests, the browser tests and the benchmarks share: a free loopback
port (`net`), a server subprocess runner (`server`) and a protocol-v1 test client
(`client`). It runs servers on 127.0.0.1 only and never imports chatsrv: everything
here talks to the server the way a user's program does, over a socket."""
