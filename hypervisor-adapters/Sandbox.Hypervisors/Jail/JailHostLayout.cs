namespace Sandbox.Hypervisors.Jail;

/// <summary>
/// Where the host keeps what a dynamically linked program needs, so that a jail can hold exactly that: the top-level
/// library directories that are symlinks into /usr on a merged-/usr host (Debian 12) or real directories otherwise,
/// whether /usr/lib64 exists, and the loader cache.
/// </summary>
public sealed record JailHostLayout(
    IReadOnlyDictionary<string, string> LibrarySymlinks,
    IReadOnlyList<string> LibraryDirectories,
    string? LoaderCache)
{
    private static readonly string[] TopLevelLibraryPaths = ["/lib", "/lib64"];
    private static readonly string[] UsrLibraryPaths = ["/usr/lib", "/usr/lib64"];

    public static JailHostLayout Detect()
    {
        var links = new Dictionary<string, string>();
        var directories = new List<string>();
        foreach (var path in TopLevelLibraryPaths)
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is { } target)
                links[path] = target;
            else if (Directory.Exists(path))
                directories.Add(path);
        }
        directories.AddRange(UsrLibraryPaths.Where(Directory.Exists));
        return new JailHostLayout(links, directories, File.Exists("/etc/ld.so.cache") ? "/etc/ld.so.cache" : null);
    }
}
