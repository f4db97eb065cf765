using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Containers;

/// <summary>
/// The file the agent executes for crun commands. crun 1.x protects itself against CVE-2019-5736 (a container
/// overwriting the runtime through /proc/self/exe) by re-executing itself on every command from a sealed copy of its
/// binary, unless /proc/self/exe is already a sealed memfd or lies on a read-only mount of a filesystem other than
/// tmpfs. The guest's root is the initramfs on tmpfs, so every crun command would run crun three times (a bind-mount
/// attempt, then a sealed memfd copy), ~60 ms more per command under TCG.
/// With <paramref name="readOnlyDirectory"/> set (the guest, where the agent is PID 1), the binary is copied once, before
/// the first command, into a ramfs mounted there and then remounted read-only: crun accepts that as safe and runs once.
/// The protection is the same: nothing in a container can write the copy, and making the mount writable again needs
/// CAP_SYS_ADMIN in the guest's initial mount namespace. If the copy cannot be made, crun runs from
/// <paramref name="installedPath"/> as before, and the reason is logged once.
/// </summary>
public sealed class CrunBinary(string installedPath, string? readOnlyDirectory)
{
    private const ulong MS_RDONLY = 1, MS_REMOUNT = 32;
    private readonly Lazy<string> _path = new(() => Prepare(installedPath, readOnlyDirectory));

    /// <summary>The path of crun as the user configured it (argv[0] of every command).</summary>
    public string InstalledPath => installedPath;

    /// <summary>The file to execute: the read-only copy once it exists, else <see cref="InstalledPath"/>.</summary>
    public string ExecutablePath => _path.Value;

    private static string Prepare(string installedPath, string? directory)
    {
        if (directory == null) return installedPath;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        string copy = Path.Combine(directory, Path.GetFileName(installedPath));
        bool mounted = false;
        try
        {
            Directory.CreateDirectory(directory);
            if (LibCStrings.mount("crun", directory, "ramfs", 0, "mode=0755") != 0)
                throw new IOException($"mount ramfs on {directory}: {Errno.DescribeLast()}");
            mounted = true;
            File.Copy(installedPath, copy);
            File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead |
                                       UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            if (LibCStrings.mount("crun", directory, "ramfs", MS_REMOUNT | MS_RDONLY, null) != 0)
                throw new IOException($"remount {directory} read-only: {Errno.DescribeLast()}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (mounted) LibCStrings.umount2(directory, MNT_DETACH);
            AgentLog.Write($"crun runs from {installedPath}, which makes every crun command re-execute itself (slower): " +
                           $"its read-only copy in {directory} failed: {e.Message}");
            return installedPath;
        }
        AgentLog.Write($"crun runs from its read-only copy {copy} ({AgentLog.Milliseconds(start)})");
        return copy;
    }
}
