using System.Diagnostics;
using Sandbox.Hypervisors;
using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Runtime.Templates;

/// <summary>
/// The templates of this host, one directory per recipe key under <see cref="Root"/> (the runtime's state root's
/// sibling, /run/sandbox/templates by default: tmpfs, so templates go with a reboot, when the image or QEMU may have
/// changed anyway). A template is made on demand, once: a lock file per key keeps two shims from building it at once.
/// </summary>
public sealed class VmTemplateStore(string root)
{
    public const string DefaultRoot = "/run/sandbox/templates";

    /// <summary>How long a shim waits for another's template build before it gives up (and boots cold).</summary>
    public static readonly TimeSpan BuildLockTimeout = TimeSpan.FromMinutes(3);

    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>Where <paramref name="recipe"/>'s template is, built or not.</summary>
    public VmTemplate For(VmTemplateRecipe recipe)
    {
        string key = recipe.Key;
        return new VmTemplate(Path.Combine(Root, key[..16]), key);
    }

    /// <summary>The template of <paramref name="recipe"/>, built first when there is none (<paramref name="built"/> says
    /// whether this call built it).</summary>
    public async Task<(VmTemplate Template, bool Built)> GetOrBuildAsync(VmTemplateRecipe recipe, Func<IHypervisor> newHypervisor, string? jailerPath,
        TimeSpan agentReadyTimeout, CancellationToken cancellationToken)
    {
        var template = For(recipe);
        if (IsUsable(template))
            return (template, false);
        Directory.CreateDirectory(Root);
        int lockFd = await LockAsync(template.Directory + ".lock", cancellationToken);
        try
        {
            if (IsUsable(template))
                return (template, false);
            if (Directory.Exists(template.Directory))
                Directory.Delete(template.Directory, recursive: true); // incomplete, or another key with the same prefix
            await using var hypervisor = newHypervisor();
            return (await TemplateBuilder.BuildAsync(recipe, template, hypervisor, jailerPath, agentReadyTimeout, cancellationToken), true);
        }
        finally
        {
            FileDescriptors.CloseQuietly(lockFd);
        }
    }

    /// <summary>Complete, and made from this very key (the directory is named by its first 16 hex digits only).</summary>
    private static bool IsUsable(VmTemplate template)
    {
        if (!template.IsComplete)
            return false;
        try
        {
            return File.ReadLines(template.ManifestFile).Any(line => line == "key " + template.Key);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task<int> LockAsync(string path, CancellationToken cancellationToken)
    {
        int fd = LibCStrings.open(path, Tmds.Linux.LibC.O_RDWR | Tmds.Linux.LibC.O_CREAT | Tmds.Linux.LibC.O_CLOEXEC, 0x180);
        if (fd < 0)
            throw new IOException($"cannot open the template lock {path}: {Errno.DescribeLast()}");
        var clock = Stopwatch.StartNew();
        while (flock(fd, LOCK_EX | LOCK_NB) != 0)
        {
            if (clock.Elapsed > BuildLockTimeout)
            {
                FileDescriptors.CloseQuietly(fd);
                throw new TimeoutException($"another process has held the template lock {path} for {BuildLockTimeout.TotalMinutes:0} min");
            }
            await Task.Delay(50, cancellationToken);
        }
        return fd;
    }
}
