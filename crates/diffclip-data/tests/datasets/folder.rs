//! Tests: image folders and subsets.

use diffclip_data::datasets::*;

use crate::fixtures::*;

#[test]
fn image_folder_lists_sorted_classes_and_images() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("set");
    write(&root.join("dog/b.png"), &png_bytes(9, 9, [21, 0, 0]));
    write(&root.join("dog/a.PNG"), &png_bytes(9, 9, [20, 0, 0]));
    write(&root.join("dog/notes.txt"), b"not an image");
    write(&root.join("dog/.hidden.png"), b"");
    write(&root.join("cat/nested/c.png"), &png_bytes(9, 9, [11, 0, 0]));
    write(
        &root.join("cat/0.jpg"),
        &std::fs::read(fixtures().join("flower.jpg")).unwrap(),
    );
    write(&root.join("bird/.keep"), b"");
    write(&root.join("README"), b"a file at the root");

    // A class folder without images (hidden files do not count) is an error naming it.
    let err = ImageFolderDataset::open(&root, loader()).unwrap_err();
    assert!(
        err.to_string()
            .contains(&*root.join("bird").to_string_lossy())
            && err.to_string().contains("no images"),
        "{err}"
    );
    write(&root.join("bird/x.png"), &png_bytes(9, 9, [5, 0, 0]));

    let ds = ImageFolderDataset::open(&root, loader()).unwrap();
    assert_eq!(ds.folders(), ["bird", "cat", "dog"]);
    assert_eq!(ds.class_names(), ["bird", "cat", "dog"]);
    assert_eq!(ds.len(), 5);
    let labels: Vec<usize> = (0..5).map(|i| ds.label(i).unwrap()).collect();
    assert_eq!(labels, [0, 1, 1, 2, 2]);
    assert_eq!(ds.samples()[2].0, root.join("cat/nested/c.png"));
    let item = ds.get_item(3).unwrap();
    assert_eq!(
        (item.label, item.caption.as_str(), red(&item)),
        (Some(2), "a photo of a dog.", 20)
    );
    assert_eq!(ds.full_label(2), Some(2));

    write(
        &tmp.path().join("names.txt"),
        b"small bird\nhouse cat\n\ngood dog\n",
    );
    let named = ds
        .clone()
        .with_class_names_file(tmp.path().join("names.txt"))
        .unwrap();
    assert_eq!(named.class_names(), ["small bird", "house cat", "good dog"]);
    assert_eq!(
        named.get_item(1).unwrap().caption,
        "a photo of a house cat."
    );
    write(
        &tmp.path().join("names.json"),
        br#"{"dog": "Dog", "cat": "Cat", "bird": "Bird"}"#,
    );
    let named = ds
        .clone()
        .with_class_names_file(tmp.path().join("names.json"))
        .unwrap();
    assert_eq!(named.class_names(), ["Bird", "Cat", "Dog"]);
    let t = named.with_templates(vec!["itap of a {c}.".into()]).unwrap();
    assert_eq!(t.get_item(4).unwrap().caption, "itap of a Dog.");
    assert!(ds.clone().with_class_names(vec!["x".into()]).is_err());
    write(&tmp.path().join("two.txt"), b"a\nb\n");
    assert!(
        ds.clone()
            .with_class_names_file(tmp.path().join("two.txt"))
            .is_err()
    );
    assert!(
        ImageFolderDataset::open(tmp.path().join("nope"), loader())
            .unwrap_err()
            .to_string()
            .contains("nope")
    );
}

#[test]
fn imagenet_a_folders_remap_to_the_metadata_subset() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(metadata()).unwrap()).unwrap();
    let inet = &meta["imagenet1k"];
    let wnids: Vec<String> = serde_json::from_value(inet["wnids"].clone()).unwrap();
    let names: Vec<String> = serde_json::from_value(inet["classnames"].clone()).unwrap();
    let a_idx: Vec<usize> =
        serde_json::from_value(inet["imagenet_a_class_indices"].clone()).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let png = png_bytes(2, 2, [9, 9, 9]);
    for &i in a_idx.iter().rev() {
        write(&tmp.path().join(format!("{}/x.png", wnids[i])), &png);
    }
    let subset = LabelSubset::from_metadata_file(metadata(), "imagenet-a").unwrap();
    assert_eq!((subset.len(), subset.full_size()), (200, 1000));
    assert_eq!(subset.indices(), a_idx.as_slice());

    let ds = ImageFolderDataset::open(tmp.path(), loader())
        .unwrap()
        .with_folder_ids(&wnids)
        .unwrap();
    assert_eq!(ds.label_subset().unwrap(), &subset);
    for local in [0, 57, 199] {
        assert_eq!(ds.full_label(local), Some(a_idx[local]));
        assert_eq!(wnids[a_idx[local]], ds.folders()[local]);
        assert_eq!(subset.to_local(a_idx[local]), Some(local));
    }
    let ds = ds.with_class_names(subset.select(&names).unwrap()).unwrap();
    assert_eq!(ds.class_names()[0], names[a_idx[0]]);
    assert_eq!(ds.label(5).unwrap(), 5);
    let mut scores = vec![0.0f32; 1000];
    scores[a_idx[7]] = 1.0;
    let restricted = subset.restrict(&scores).unwrap();
    assert_eq!(restricted.iter().position(|&s| s == 1.0), Some(7));

    let r = LabelSubset::from_metadata_file(metadata(), "imagenet_r").unwrap();
    assert_ne!(r, subset);
    let plain = ImageFolderDataset::open(tmp.path(), loader()).unwrap();
    let err = plain
        .with_label_subset(LabelSubset::new(vec![1, 2], 1000).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("200 class folders"), "{err}");
    // A caption past the prompt limit is refused when names or templates are given, not made.
    let plain = ImageFolderDataset::open(tmp.path(), loader()).unwrap();
    let err = plain.clone().with_templates(vec!["{c}".repeat(30_000)]).unwrap_err().to_string();
    assert!(err.contains("at most 65536"), "{err}");
    let mut long = vec!["x".to_string(); 200];
    long[3] = "y".repeat(70_000);
    let err = plain.with_class_names(long).unwrap_err().to_string();
    assert!(err.contains("yyyy…") && err.contains("70014 bytes"), "{err}");
    assert!(LabelSubset::from_metadata_file(metadata(), "imagenet_z").is_err());
    assert!(LabelSubset::new(vec![3, 3], 10).is_err());
}

#[test]
fn numbered_class_folders_take_their_names_by_number() {
    // ImageNet-V2's layout: folders 0..999 sort as text, so "10" is the third class folder.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("v2");
    for folder in 0..11 {
        write(&root.join(folder.to_string()).join("x.png"), &png_bytes(4, 4, [1, 0, 0]));
    }
    let names: String = (0..11).map(|i| format!("class {i}\n")).collect();
    write(&root.join("classnames.txt"), names.as_bytes());
    let set = ImageFolder::open(&root).unwrap();
    assert_eq!(set.classes[..4], ["0", "1", "10", "2"]);
    assert_eq!(set.class_names[..4], ["class 0", "class 1", "class 10", "class 2"]);
    // One line too many (a header, say) would shift every name: refused.
    write(&root.join("classnames.txt"), format!("name\n{names}").as_bytes());
    let e = ImageFolder::open(&root).unwrap_err().to_string();
    assert!(e.contains("12 class names for 11 class folders"), "{e}");
    write(&root.join("classnames.txt"), names.as_bytes());
    // A JSON object is keyed by folder and needs no numbering.
    let object: Vec<String> = (0..11).map(|i| format!("\"{i}\": \"n{i}\"")).collect();
    write(&root.join("classnames.txt"), format!("{{{}}}", object.join(", ")).as_bytes());
    assert_eq!(ImageFolder::open(&root).unwrap().class_names[..4], ["n0", "n1", "n10", "n2"]);
    // A class-name file that is no file, or far too long for one, is refused: never passed
    // over for the folder names, never read whole.
    let names = root.join("classnames.txt");
    std::fs::remove_file(&names).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&names).status().unwrap().success());
    let e = ImageFolder::open(&root).unwrap_err().to_string();
    assert!(e.contains("classnames.txt") && e.contains("FIFO"), "{e}");
    std::fs::remove_file(&names).unwrap();
    std::fs::File::create(&names).unwrap().set_len(1 << 40).unwrap();
    let e = ImageFolder::open(&root).unwrap_err().to_string();
    assert!(e.contains("classnames.txt") && e.contains("longer than 16777216 bytes"), "{e}");
}

#[test]
fn a_template_without_the_class_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("cat/a.png"), &png_bytes(4, 4, [1, 0, 0]));
    let ds = ImageFolderDataset::open(tmp.path(), loader()).unwrap();
    let e = ds.with_templates(vec!["a photo.".into()]).unwrap_err().to_string();
    assert!(e.contains("\"a photo.\" has no {c}"), "{e}");
}

#[test]
fn nested_images_follow_torchvision_order() {
    // torchvision: `for root, _, files in sorted(os.walk(class_dir)): for f in sorted(files)`.
    // Roots sort as strings: "c" < "c/a" < "c/a-b" < "c/a/x" ('-' < '/'), so the class folder's
    // own files come first and a/x comes after a-b (a path sort puts a/x before a-b and z.png).
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("set");
    for f in ["c/z.png", "c/a/y.png", "c/a/x/w.png", "c/a-b/v.png", "c/b.png"] {
        write(&root.join(f), b"");
    }
    let want = ["c/b.png", "c/z.png", "c/a/y.png", "c/a-b/v.png", "c/a/x/w.png"];
    let rel = |paths: &[std::path::PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(rel(&ImageFolder::open(&root).unwrap().images), want);
    assert_eq!(rel(&list_image_files(&[root.join("c")]).unwrap()), want);
}

#[test]
fn a_class_folder_whose_name_is_not_text_is_named_in_the_error() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join(std::ffi::OsStr::from_bytes(b"\xff\xfe"));
    for dir in [tmp.path().join("cat"), odd] {
        write(&dir.join("1.png"), &png_bytes(4, 4, [1, 2, 3]));
    }
    let err = ImageFolder::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("has a name that is not UTF-8 text"), "{err}");
}
