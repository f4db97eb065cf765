namespace Sandbox.IntegrationTests.Support;

/// <summary>A container root filesystem made of the host's busybox-static: /bin/busybox plus applet symlinks.</summary>
public static class BusyboxRootfs
{
    public const string HostBusybox = "/bin/busybox";

    private static readonly string[] Applets =
    [
        "sh", "echo", "cat", "head", "tail", "uname", "sleep", "true", "false", "ls", "id", "hostname", "wc", "md5sum",
        "sha256sum", "dd", "tr", "env", "pwd", "ps", "kill", "stty", "tty", "seq", "yes", "mkdir", "touch", "nc", "grep",
    ];

    public static void Create(string rootfs)
    {
        if (!File.Exists(HostBusybox))
            throw new FileNotFoundException($"{HostBusybox} is missing: install busybox-static (make setup does)");
        foreach (var dir in new[] { "bin", "dev", "proc", "sys", "tmp", "etc", "root", "run" })
            Directory.CreateDirectory(Path.Combine(rootfs, dir));
        File.Copy(HostBusybox, Path.Combine(rootfs, "bin", "busybox"), overwrite: true);
        foreach (var applet in Applets)
        {
            var link = Path.Combine(rootfs, "bin", applet);
            if (!File.Exists(link))
                File.CreateSymbolicLink(link, "busybox");
        }
        File.WriteAllText(Path.Combine(rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
        File.WriteAllText(Path.Combine(rootfs, "etc", "group"), "root:x:0:\n");
    }
}
