using System.Text.RegularExpressions;

namespace Sandbox.Shim.Start;

/// <summary>
/// What `start` prints for containerd: the daemon's address, in the form the calling containerd reads.
/// containerd 2.x reads a JSON bootstrap (<c>{"version":3,"address":"unix://…","protocol":"ttrpc"}</c>) and then
/// speaks <c>containerd.task.v3.Task</c>; 1.7 refuses any version above 2 and 1.6 takes the whole output as the
/// address, so both get the plain address (task API v2). The daemon serves both task APIs.
/// Which containerd calls is read from its binary (<c>-publish-binary</c>, containerd's own path): the main package
/// path in its Go build information ends in <c>containerd/v2/cmd/containerd</c> from 2.0 on. containerd 1.6 passes
/// no <c>MAX_SHIM_VERSION</c>, so its binary is not even opened.
/// </summary>
public static partial class ShimBootstrapReply
{
    public const string MaxShimVersionVariable = "MAX_SHIM_VERSION";

    /// <summary>The task API version to announce: 3 for containerd 2.x, 2 otherwise.</summary>
    public static int TaskApiVersionFor(string publishBinary, string? maxShimVersion)
    {
        if (string.IsNullOrEmpty(maxShimVersion) || publishBinary.Length == 0)
            return 2;
        return ContainerdMajorVersionOf(GoBuildInfo.MainPackageOf(publishBinary)) >= 2 ? 3 : 2;
    }

    /// <summary>2 for "github.com/containerd/containerd/v2/cmd/containerd", 1 for the 1.x path, 0 when unknown.</summary>
    public static int ContainerdMajorVersionOf(string? mainPackage)
    {
        if (mainPackage is null)
            return 0;
        var match = ContainerdPackage().Match(mainPackage);
        if (!match.Success)
            return 0;
        return match.Groups[1].Success ? int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 1;
    }

    /// <summary>The text `start` prints.</summary>
    public static string Format(string address, int taskApiVersion) =>
        taskApiVersion >= 3
            ? $$"""{"version":{{taskApiVersion}},"address":"{{address}}","protocol":"ttrpc"}"""
            : address;

    [GeneratedRegex(@"^github\.com/containerd/containerd(?:/v(\d+))?/cmd/containerd$")]
    private static partial Regex ContainerdPackage();
}
