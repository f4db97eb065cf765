using System.Runtime.Versioning;

// A containerd shim: Linux only (mount, prctl, posix_spawn, Unix sockets).
[assembly: SupportedOSPlatform("linux")]
