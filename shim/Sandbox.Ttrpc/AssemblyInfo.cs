using System.Runtime.Versioning;

// ttrpc runs over Unix sockets and reads SO_PEERCRED: Linux only.
[assembly: SupportedOSPlatform("linux")]
