namespace Sandbox.Runtime.Sandboxes;

/// <summary>The guest kernel and initramfs that every sandbox VM boots.</summary>
public sealed record GuestAssets(string KernelPath, string InitrdPath)
{
    /// <summary>Where `make install` puts them.</summary>
    public const string InstalledDirectory = "/usr/share/sandbox/guest";

    /// <summary>
    /// $SANDBOX_GUEST_DIR, else the installed directory, else build/guest of the source tree this program runs from
    /// (so tests and `dotnet run` work in a checkout). Throws with every place looked at when none has both files.
    /// </summary>
    public static GuestAssets Locate(GuestKernel kernel = GuestKernel.Sandbox)
    {
        var candidates = new List<string>();
        var fromEnvironment = Environment.GetEnvironmentVariable("SANDBOX_GUEST_DIR");
        if (!string.IsNullOrEmpty(fromEnvironment))
            candidates.Add(fromEnvironment);
        candidates.Add(InstalledDirectory);
        if (CheckoutDirectory() is { } checkout)
            candidates.Add(checkout);
        foreach (var dir in candidates)
        {
            var assets = InDirectory(dir, kernel);
            if (File.Exists(assets.KernelPath) && File.Exists(assets.InitrdPath))
                return assets;
        }
        var wanted = InDirectory("", kernel);
        throw new FileNotFoundException(
            $"guest kernel and initramfs not found ({wanted.KernelPath} and {wanted.InitrdPath}) in: " + string.Join(", ", candidates) +
            ". Build them with `make image` or install them with `make install`, or set SANDBOX_GUEST_DIR.");
    }

    /// <summary>build/guest of the source checkout this program runs from (found by Sandbox.sln above it), whether
    /// built yet or not; null outside a checkout.</summary>
    public static string? CheckoutDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sandbox.sln")))
                return Path.Combine(dir.FullName, "build", "guest");
        }
        return null;
    }

    public static GuestAssets InDirectory(string directory, GuestKernel kernel = GuestKernel.Sandbox) => kernel switch
    {
        GuestKernel.Generic => new(Path.Combine(directory, "vmlinux-generic"), Path.Combine(directory, "initramfs-generic.cpio")),
        _ => new(Path.Combine(directory, "vmlinux"), Path.Combine(directory, "initramfs.cpio")),
    };

    public string Directory => Path.GetDirectoryName(KernelPath)!;
}
